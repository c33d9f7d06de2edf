CREATE TABLE todos (id SERIAL PRIMARY KEY, title TEXT NOT NULL);
INSERT INTO todos (title) VALUES ('buy milk'), ('write code');
