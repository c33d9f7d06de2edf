<?php
// phpMyAdmin's configuration in the local phpmyadmin stand-in, from the
// environment as upstream's phpmyadmin image reads it: the servers in
// PMA_HOSTS (comma-separated) or PMA_HOST (`db` when neither is set), their
// ports (PMA_PORTS, PMA_PORT), sockets (PMA_SOCKETS, PMA_SOCKET) and names
// (PMA_VERBOSES, PMA_VERBOSE); PMA_ARBITRARY=1 for a login form that takes any
// server; PMA_USER and PMA_PASSWORD to log in without a form; PMA_ABSOLUTE_URI.
// An app's own settings go in /etc/phpmyadmin/config.user.inc.php, read last.

require '/var/lib/phpmyadmin/blowfish_secret.inc.php';

$env = static function (string $name): ?string {
    $value = getenv($name);
    return $value === false || $value === '' ? null : $value;
};
$list = static function (?string $value): array {
    return $value === null ? [] : array_map('trim', explode(',', $value));
};

$hosts = $list($env('PMA_HOSTS'));
if ($hosts === []) {
    $hosts = [$env('PMA_HOST') ?? 'db'];
}
$ports = $list($env('PMA_PORTS') ?? $env('PMA_PORT'));
$sockets = $list($env('PMA_SOCKETS') ?? $env('PMA_SOCKET'));
$names = $list($env('PMA_VERBOSES') ?? $env('PMA_VERBOSE'));

foreach ($hosts as $n => $host) {
    $i = $n + 1;
    $cfg['Servers'][$i]['host'] = $host;
    $cfg['Servers'][$i]['compress'] = false;
    $cfg['Servers'][$i]['AllowNoPassword'] = true;
    if (isset($ports[$n])) {
        $cfg['Servers'][$i]['port'] = $ports[$n];
    }
    if (isset($sockets[$n])) {
        $cfg['Servers'][$i]['socket'] = $sockets[$n];
    }
    if (isset($names[$n])) {
        $cfg['Servers'][$i]['verbose'] = $names[$n];
    }
    if ($env('PMA_USER') !== null) {
        $cfg['Servers'][$i]['auth_type'] = 'config';
        $cfg['Servers'][$i]['user'] = $env('PMA_USER');
        $cfg['Servers'][$i]['password'] = $env('PMA_PASSWORD') ?? '';
    } else {
        $cfg['Servers'][$i]['auth_type'] = 'cookie';
    }
}

$cfg['AllowArbitraryServer'] = $env('PMA_ARBITRARY') === '1';
if ($env('PMA_ABSOLUTE_URI') !== null) {
    $cfg['PmaAbsoluteUri'] = $env('PMA_ABSOLUTE_URI');
}
$cfg['TempDir'] = '/var/lib/phpmyadmin/tmp';
$cfg['UploadDir'] = '';
$cfg['SaveDir'] = '';

if (is_readable('/etc/phpmyadmin/config.user.inc.php')) {
    include '/etc/phpmyadmin/config.user.inc.php';
}
