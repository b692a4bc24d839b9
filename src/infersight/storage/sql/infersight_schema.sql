-- Which schema version created this database, per component (infersight.storage.schema.ensure_schema).
CREATE TABLE IF NOT EXISTS {db}.`infersight_schema{local}`{on_cluster} (Component String, Version UInt32, AppliedAt DateTime DEFAULT now()) ENGINE = {engine:Replacing} ORDER BY Component;
