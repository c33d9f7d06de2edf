-- The row the page prints: made by the mariadb stand-in's initdb on first start.
CREATE TABLE notes (id INT PRIMARY KEY AUTO_INCREMENT, body VARCHAR(100) NOT NULL);
INSERT INTO notes (body) VALUES ('hello from mariadb');
