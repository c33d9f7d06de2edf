<?php
$dsn = sprintf('mysql:host=%s;dbname=%s;charset=utf8mb4', getenv('DB_HOST'), getenv('DB_NAME'));
$pdo = new PDO($dsn, getenv('DB_USER'), getenv('DB_PASSWORD'), [PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION]);
$pdo->exec('CREATE TABLE IF NOT EXISTS visits (id INT AUTO_INCREMENT PRIMARY KEY, at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)');
$pdo->exec('INSERT INTO visits () VALUES ()');
$n = $pdo->query('SELECT COUNT(*) FROM visits')->fetchColumn();
header('Content-Type: application/json');
echo json_encode(['visits' => (int)$n, 'server' => $pdo->getAttribute(PDO::ATTR_SERVER_VERSION), 'intl' => extension_loaded('intl')]);
