<?php
/**
 * Removes everything the plugin stored: its option, its comment meta and its replay table.
 *
 * @package ModerationService
 */

defined( 'WP_UNINSTALL_PLUGIN' ) || exit;

global $wpdb;

delete_option( 'moderation_service_settings' );
wp_unschedule_hook( 'moderation_service_sync' ); // the recurring job and any one-off retry
$moderation_service_keys = array( 'external_id', 'id', 'state', 'status', 'reason', 'scores', 'decided_at', 'decided_by', 'error', 'local_decision', 'pending_decision' );
foreach ( $moderation_service_keys as $moderation_service_key ) {
	delete_metadata( 'comment', 0, '_moderation_service_' . $moderation_service_key, '', true );
}
$moderation_service_table = $wpdb->prefix . 'moderation_service_deliveries';
// phpcs:ignore WordPress.DB.DirectDatabaseQuery.DirectQuery,WordPress.DB.DirectDatabaseQuery.NoCaching,WordPress.DB.DirectDatabaseQuery.SchemaChange,WordPress.DB.PreparedSQL.InterpolatedNotPrepared
$wpdb->query( "DROP TABLE IF EXISTS {$moderation_service_table}" );
