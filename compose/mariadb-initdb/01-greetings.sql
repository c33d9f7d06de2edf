-- Run once, by the entrypoint, in MARIADB_DATABASE, when the datadir is new.
CREATE TABLE greetings (id INT PRIMARY KEY AUTO_INCREMENT, greeting VARCHAR(64) NOT NULL);
INSERT INTO greetings (greeting) VALUES ('hello from initdb');
