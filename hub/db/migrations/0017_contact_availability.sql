-- When a contact may be called ("weekdays 7:00-18:00; after hours only if the owner does not
-- answer"): operators read it before dialling at 3 a.m.
ALTER TABLE object_contacts ADD COLUMN availability text NOT NULL DEFAULT '';
