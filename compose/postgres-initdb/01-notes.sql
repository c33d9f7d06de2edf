-- Run once, on the database's first start, by the postgres image's entrypoint.
CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL);
INSERT INTO notes (body) VALUES ('created by /docker-entrypoint-initdb.d/01-notes.sql');
