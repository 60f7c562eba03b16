-- Object documentation: schematics, photos and PDFs uploaded to an object (docs/architecture.md §5).
-- The bytes live here rather than on disk so one PostgreSQL backup holds the whole hub, and a
-- document, its metadata and its audit row commit together. Uploads are capped (documents.max_bytes).
CREATE TABLE object_documents (
    id          bigserial PRIMARY KEY,
    object_id   bigint NOT NULL REFERENCES objects (id) ON DELETE CASCADE,
    title       text NOT NULL DEFAULT '' CHECK (length(title) <= 200),
    filename    text NOT NULL CHECK (length(filename) BETWEEN 1 AND 255),
    -- The type the hub found in the content (never the client's claim).
    media_type  text NOT NULL CHECK (media_type IN ('application/pdf', 'image/png', 'image/jpeg', 'image/webp')),
    size_bytes  bigint NOT NULL CHECK (size_bytes > 0),
    sha256      text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    content     bytea NOT NULL CHECK (octet_length(content) = size_bytes),
    uploaded_by text NOT NULL,  -- the actor, as the audit log names it (user:<id>)
    uploaded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX object_documents_object ON object_documents (object_id, uploaded_at);
-- PDFs and images are compressed already: TOAST keeps them out of line without trying again.
ALTER TABLE object_documents ALTER COLUMN content SET STORAGE EXTERNAL;
