<?php
/**
 * The signed webhook: POST /wp-json/moderation-service/v1/webhook.
 *
 * @package ModerationService
 */

defined( 'ABSPATH' ) || exit;

/**
 * Receives the service's verdicts.
 *
 * Each delivery carries X-Moderation-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>
 * keyed with the webhook secret. A delivery is refused when the signature is wrong, when its
 * timestamp is more than five minutes off, or when the same signature was seen before (a replay:
 * the table below remembers signatures for as long as their timestamp is acceptable).
 */
final class Moderation_Service_Webhook {

	const REST_NAMESPACE    = 'moderation-service/v1';
	const ROUTE             = '/webhook';
	const TOLERANCE_SECONDS = 300;
	const TABLE             = 'moderation_service_deliveries';

	/**
	 * Hooks the REST route.
	 */
	public static function register(): void {
		add_action( 'rest_api_init', array( __CLASS__, 'register_route' ) );
	}

	/**
	 * The URL to give the service (`keys create --webhook-url`).
	 */
	public static function url(): string {
		return rest_url( self::REST_NAMESPACE . self::ROUTE );
	}

	/**
	 * The replay table's name.
	 */
	public static function table(): string {
		global $wpdb;
		return $wpdb->prefix . self::TABLE;
	}

	/**
	 * Creates the replay table (on activation).
	 */
	public static function create_table(): void {
		global $wpdb;
		require_once ABSPATH . 'wp-admin/includes/upgrade.php';
		$table = self::table();
		dbDelta(
			"CREATE TABLE {$table} (
				signature char(64) NOT NULL,
				received_at bigint(20) unsigned NOT NULL,
				PRIMARY KEY  (signature),
				KEY received_at (received_at)
			) {$wpdb->get_charset_collate()};"
		);
	}

	/**
	 * Registers the route. It is public: the signature is the authentication.
	 */
	public static function register_route(): void {
		register_rest_route(
			self::REST_NAMESPACE,
			self::ROUTE,
			array(
				'methods'             => 'POST',
				'callback'            => array( __CLASS__, 'receive' ),
				'permission_callback' => array( __CLASS__, 'check_signature' ),
			)
		);
	}

	/**
	 * Verifies the signature and the timestamp.
	 *
	 * @param WP_REST_Request $request The delivery.
	 * @return true|WP_Error
	 */
	public static function check_signature( WP_REST_Request $request ) {
		$secret = (string) Moderation_Service_Settings::get()['webhook_secret'];
		if ( '' === $secret ) {
			return new WP_Error( 'moderation_service_no_secret', 'No webhook secret is configured.', array( 'status' => 401 ) );
		}
		$parsed = self::parse_header( (string) $request->get_header( 'x_moderation_signature' ) );
		if ( null === $parsed ) {
			return new WP_Error( 'moderation_service_bad_signature', 'Missing or malformed signature.', array( 'status' => 401 ) );
		}
		list( $timestamp, $signature ) = $parsed;
		if ( abs( time() - $timestamp ) > self::TOLERANCE_SECONDS ) {
			return new WP_Error( 'moderation_service_stale', 'The signature timestamp is too old or in the future.', array( 'status' => 401 ) );
		}
		$expected = hash_hmac( 'sha256', $timestamp . '.' . $request->get_body(), $secret );
		if ( ! hash_equals( $expected, $signature ) ) {
			return new WP_Error( 'moderation_service_bad_signature', 'The signature does not match.', array( 'status' => 401 ) );
		}
		if ( ! self::remember( $signature ) ) {
			return new WP_Error( 'moderation_service_replay', 'This delivery was received before.', array( 'status' => 409 ) );
		}
		return true;
	}

	/**
	 * Applies the verdict.
	 *
	 * @param WP_REST_Request $request The delivery.
	 * @return WP_REST_Response|WP_Error
	 */
	public static function receive( WP_REST_Request $request ) {
		$body    = json_decode( $request->get_body(), true );
		$summary = is_array( $body ) && isset( $body['comment'] ) && is_array( $body['comment'] ) ? $body['comment'] : null;
		if ( null === $summary || empty( $summary['external_id'] ) ) {
			return new WP_Error( 'moderation_service_bad_body', 'The body has no comment.external_id.', array( 'status' => 400 ) );
		}
		$comment_id = Moderation_Service_Comments::find_by_external_id( (string) $summary['external_id'] );
		if ( 0 === $comment_id ) {
			// 404 makes the service retry: the verdict can arrive before WordPress stored the comment.
			return new WP_Error( 'moderation_service_unknown_comment', 'No comment has this external_id.', array( 'status' => 404 ) );
		}
		$outcome = Moderation_Service_Comments::apply_verdict( $comment_id, $summary );
		return new WP_REST_Response(
			array(
				'comment_id' => $comment_id,
				'outcome'    => $outcome,
			),
			200
		);
	}

	/**
	 * The header's timestamp and v1 signature, or null.
	 *
	 * @param string $header X-Moderation-Signature.
	 * @return array{0: int, 1: string}|null
	 */
	private static function parse_header( string $header ): ?array {
		$parts = array();
		foreach ( explode( ',', $header ) as $item ) {
			$pair = explode( '=', trim( $item ), 2 );
			if ( 2 === count( $pair ) ) {
				$parts[ $pair[0] ] = $pair[1];
			}
		}
		if ( ! isset( $parts['t'], $parts['v1'] ) || ! ctype_digit( $parts['t'] ) || ! preg_match( '/^[0-9a-f]{64}$/', $parts['v1'] ) ) {
			return null;
		}
		return array( (int) $parts['t'], $parts['v1'] );
	}

	/**
	 * Records a signature; false if it was already there.
	 *
	 * @param string $signature The v1 signature.
	 */
	private static function remember( string $signature ): bool {
		global $wpdb;
		$table = self::table(); // The site's prefix and a constant: no user input (WordPress 6.1 has no %i).
		// phpcs:ignore WordPress.DB.DirectDatabaseQuery.DirectQuery,WordPress.DB.PreparedSQL.InterpolatedNotPrepared -- a replay guard must not be cached.
		$inserted = $wpdb->query( $wpdb->prepare( "INSERT IGNORE INTO {$table} (signature, received_at) VALUES (%s, %d)", $signature, time() ) );
		return 1 === $inserted;
	}

	/**
	 * Forgets signatures whose timestamps would be refused anyway.
	 */
	public static function forget_old_signatures(): void {
		global $wpdb;
		$table = self::table();
		// phpcs:ignore WordPress.DB.DirectDatabaseQuery.DirectQuery,WordPress.DB.DirectDatabaseQuery.NoCaching,WordPress.DB.PreparedSQL.InterpolatedNotPrepared
		$wpdb->query( $wpdb->prepare( "DELETE FROM {$table} WHERE received_at < %d", time() - 2 * self::TOLERANCE_SECONDS ) );
	}
}
