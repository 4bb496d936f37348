<?php
// Reads rows from the database service, reached by its service name (mysql).
try {
    $db = new PDO('mysql:host=mysql;dbname=docker', 'docker', 'docker');
    echo "<h1>LAMP on berth</h1>\n<ul>\n";
    foreach ($db->query('SELECT text FROM greetings ORDER BY id') as $row) {
        echo '<li>' . htmlspecialchars($row['text']) . "</li>\n";
    }
    echo "</ul>\n<p>PHP " . PHP_VERSION . "</p>\n";
} catch (PDOException $e) {
    http_response_code(503);
    echo 'database not ready: ' . htmlspecialchars($e->getMessage()) . "\n";
}
