-- Operator work on an alarm (issue 12, docs/architecture.md §5 "Working an alarm"): the resolution
-- chosen at resolve, the escalation mark, the procedure checklist snapshotted per bundle, call
-- outcomes in the dispatch log, and each user's time zone.

-- The codes are hub.alarms.outcomes.RESOLUTIONS; a test keeps the two lists equal.
ALTER TABLE bundle_alarms
    ADD COLUMN resolution text CHECK (resolution IN ('FALSE_ALARM', 'TEST', 'CONFIRMED_INTRUSION_POLICE',
        'CONFIRMED_FIRE_BRIGADE', 'CONFIRMED_MEDICAL', 'TECHNICAL_FAULT', 'USER_ERROR', 'WEATHER_ANIMAL',
        'CANCELLED_BY_CUSTOMER', 'OTHER')),
    ADD COLUMN resolution_note text CHECK (length(resolution_note) <= 4000),
    -- Set once by the housekeeping sweep when the bundle stayed NEW past its priority's threshold.
    ADD COLUMN escalated_at timestamptz;
-- What the escalation sweep scans: NEW bundles not yet escalated, oldest first.
CREATE INDEX bundle_alarms_unescalated ON bundle_alarms (created_at) WHERE status = 'NEW' AND escalated_at IS NULL;
-- History search by resolution and time.
CREATE INDEX bundle_alarms_resolution ON bundle_alarms (resolution, first_event_at) WHERE resolution IS NOT NULL;

-- The steps of the object's procedure for the bundle's alarm type, copied when the bundle is first
-- worked, so a later edit of the procedure never rewrites what an operator ticked. `step` counts
-- from 1. `done_by` is an actor (`user:<id>`), like claimed_by and dispatch_log.author.
CREATE TABLE bundle_checklist (
    bundle_id bigint NOT NULL REFERENCES bundle_alarms (id),
    step      integer NOT NULL CHECK (step >= 1),
    text      text NOT NULL CHECK (length(text) BETWEEN 1 AND 4000),
    done_at   timestamptz,
    done_by   text,
    PRIMARY KEY (bundle_id, step),
    CHECK ((done_at IS NULL) = (done_by IS NULL))
);

-- A call to one of the object's contacts and how it went. The contact's name and number are copied
-- as they were when called: the entry stays true after the contact is edited or removed.
ALTER TABLE dispatch_log
    ADD COLUMN contact_id bigint REFERENCES object_contacts (id) ON DELETE SET NULL,
    ADD COLUMN contact_name text,
    ADD COLUMN contact_phone text,
    ADD COLUMN outcome text CHECK (outcome IN ('ANSWERED', 'NO_ANSWER', 'WRONG_NUMBER', 'BUSY', 'VOICEMAIL')),
    ADD CHECK ((outcome IS NULL) = (contact_name IS NULL));

-- IANA zone name the console shows times in; NULL: the hub's `console.time_zone`.
ALTER TABLE users ADD COLUMN time_zone text CHECK (length(time_zone) BETWEEN 1 AND 64);
