<?php
/**
 * Plugin Name:       Moderation Service
 * Description:       Sends every new comment to your self-hosted moderation service, applies its verdict (approve, hold for a moderator, spam), and sends your moderators' decisions back as training labels.
 * Version:           1.0.0
 * Requires at least: 6.1
 * Requires PHP:      8.2
 * License:           GPL-2.0-or-later
 * License URI:       https://www.gnu.org/licenses/gpl-2.0.html
 * Text Domain:       moderation-service
 *
 * @package ModerationService
 */

defined( 'ABSPATH' ) || exit;

define( 'MODERATION_SERVICE_VERSION', '1.0.0' );
define( 'MODERATION_SERVICE_FILE', __FILE__ );

require_once __DIR__ . '/includes/class-moderation-service-settings.php';
require_once __DIR__ . '/includes/class-moderation-service-client.php';
require_once __DIR__ . '/includes/class-moderation-service-comments.php';
require_once __DIR__ . '/includes/class-moderation-service-webhook.php';
require_once __DIR__ . '/includes/class-moderation-service-sync.php';
require_once __DIR__ . '/includes/class-moderation-service-admin.php';

Moderation_Service_Settings::register();
Moderation_Service_Comments::register();
Moderation_Service_Webhook::register();
Moderation_Service_Sync::register();
Moderation_Service_Admin::register();

register_activation_hook( __FILE__, array( 'Moderation_Service_Webhook', 'create_table' ) );
register_activation_hook( __FILE__, array( 'Moderation_Service_Sync', 'schedule' ) );
register_deactivation_hook( __FILE__, array( 'Moderation_Service_Sync', 'unschedule' ) );
