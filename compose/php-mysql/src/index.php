<?php
// Reads the row initdb wrote, through mysqli and through PDO, with the
// connection settings from the environment: 200 and the row when both
// agree, 500 and the reason otherwise.
$host = getenv('DB_HOST');
$name = getenv('DB_NAME');
$user = getenv('DB_USER');
$password = getenv('DB_PASSWORD');
header('Content-Type: text/plain');
try {
    mysqli_report(MYSQLI_REPORT_ERROR | MYSQLI_REPORT_STRICT);
    $db = new mysqli($host, $user, $password, $name);
    $row = $db->query('SELECT body FROM notes WHERE id = 1')->fetch_row();
    $pdo = new PDO("mysql:host=$host;dbname=$name", $user, $password);
    $again = $pdo->query('SELECT body FROM notes WHERE id = 1')->fetchColumn();
    if ($row === null || $row[0] !== $again) {
        throw new RuntimeException('mysqli and PDO disagree');
    }
    printf("%s (PHP %s, %s)\n", $row[0], PHP_VERSION, $db->server_info);
} catch (Throwable $e) {
    http_response_code(500);
    echo 'database: ', $e->getMessage(), "\n";
}
