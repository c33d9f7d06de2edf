<?php
// The adminer stand-in's page: Debian's Adminer (adminer.php, a link to
// /usr/share/adminer/adminer.php) with the upstream image's default server:
// the login form's Server field is ADMINER_DEFAULT_SERVER, or `db` (the
// service name compose files give their database) when that is unset.
function adminer_object() {
    class DefaultServerAdminer extends \Adminer\Adminer {
        // Untyped, as Debian's compiled adminer.php declares it.
        function loginFormField($name, $heading, $value) {
            if ($name === 'server') {
                $server = getenv('ADMINER_DEFAULT_SERVER') ?: 'db';
                $value = str_replace('value=""', 'value="' . htmlspecialchars($server, ENT_QUOTES) . '"', $value);
            }
            return parent::loginFormField($name, $heading, $value);
        }
    }
    return new DefaultServerAdminer();
}

include __DIR__ . '/adminer.php';
