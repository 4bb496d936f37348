CREATE TABLE IF NOT EXISTS greetings (id INT PRIMARY KEY AUTO_INCREMENT, text VARCHAR(100));
INSERT INTO greetings (text) VALUES ('hello from mariadb'), ('served by berth compose');
