-- Robot site plans (issue 15, docs/architecture.md §5 "Robots"): an image an admin uploaded to an
-- object (object_documents) chosen as the map the console draws the object's robots on, with the
-- area it shows in metres. `origin_x_m`, `origin_y_m`: the site coordinates of the image's
-- bottom-left corner (x to the right, y up, as the robots report their poses). One plan per object.

-- The plan's document must be one of the plan's object: the pair is a foreign key, so a plan can
-- never point at another object's file whatever writes the row.
ALTER TABLE object_documents ADD CONSTRAINT object_documents_id_object UNIQUE (id, object_id);

CREATE TABLE robot_site_plans (
    object_id   bigint PRIMARY KEY REFERENCES objects (id) ON DELETE CASCADE,
    document_id bigint NOT NULL,
    width_m     double precision NOT NULL CHECK (width_m > 0 AND width_m <= 10000),
    height_m    double precision NOT NULL CHECK (height_m > 0 AND height_m <= 10000),
    origin_x_m  double precision NOT NULL DEFAULT 0 CHECK (abs(origin_x_m) <= 1000000),
    origin_y_m  double precision NOT NULL DEFAULT 0 CHECK (abs(origin_y_m) <= 1000000),
    updated_by  text NOT NULL,               -- the actor, as the audit log names it (user:<id>)
    updated_at  timestamptz NOT NULL,
    -- Deleting the image deletes the plan: the console then draws coordinates again.
    FOREIGN KEY (document_id, object_id) REFERENCES object_documents (id, object_id) ON DELETE CASCADE
);
CREATE INDEX robot_site_plans_document ON robot_site_plans (document_id, object_id);
