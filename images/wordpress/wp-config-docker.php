<?php
/*
 * wp-config.php as the wordpress stand-in writes it (docker-entrypoint.sh),
 * for a WordPress configured by its container's environment, as upstream's
 * image configures it: every setting is read when PHP runs, from the
 * variable, or from the file its NAME_FILE variable names (a Docker secret),
 * else a default. docker-entrypoint.sh replaced the placeholder phrase of
 * every key and salt with a random one when it wrote this file.
 */

/* The value of $name: from the file $name_FILE names, else the variable,
 * else $default. Named as upstream's is, for WORDPRESS_CONFIG_EXTRA that call it. */
if (!function_exists('getenv_docker')) {
	function getenv_docker($name, $default) {
		$file = getenv($name . '_FILE');
		if ($file !== false && $file !== '') {
			return rtrim(file_get_contents($file), "\r\n");
		}
		$value = getenv($name);
		return $value !== false ? $value : $default;
	}
}

define('DB_NAME', getenv_docker('WORDPRESS_DB_NAME', 'wordpress'));
define('DB_USER', getenv_docker('WORDPRESS_DB_USER', 'example username'));
define('DB_PASSWORD', getenv_docker('WORDPRESS_DB_PASSWORD', 'example password'));
/* host, host:port or a socket path, as WordPress takes it */
define('DB_HOST', getenv_docker('WORDPRESS_DB_HOST', 'mysql'));
define('DB_CHARSET', getenv_docker('WORDPRESS_DB_CHARSET', 'utf8'));
define('DB_COLLATE', getenv_docker('WORDPRESS_DB_COLLATE', ''));

foreach (array('AUTH_KEY', 'SECURE_AUTH_KEY', 'LOGGED_IN_KEY', 'NONCE_KEY',
		'AUTH_SALT', 'SECURE_AUTH_SALT', 'LOGGED_IN_SALT', 'NONCE_SALT') as $key) {
	define($key, getenv_docker('WORDPRESS_' . $key, 'put your unique phrase here'));
}
unset($key);

$table_prefix = getenv_docker('WORDPRESS_TABLE_PREFIX', 'wp_');

define('WP_DEBUG', (bool) getenv_docker('WORDPRESS_DEBUG', ''));

/* Behind a proxy that terminated TLS, WordPress must still build https links. */
if (isset($_SERVER['HTTP_X_FORWARDED_PROTO']) && strpos($_SERVER['HTTP_X_FORWARDED_PROTO'], 'https') !== false) {
	$_SERVER['HTTPS'] = 'on';
}

/* Any PHP the deployment adds (WORDPRESS_CONFIG_EXTRA), run here. */
if ($extra = getenv_docker('WORDPRESS_CONFIG_EXTRA', '')) {
	eval($extra);
}

if (!defined('ABSPATH')) {
	define('ABSPATH', __DIR__ . '/');
}

require_once ABSPATH . 'wp-settings.php';
