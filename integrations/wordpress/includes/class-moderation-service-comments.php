<?php
/**
 * Comments and verdicts: the submit-time check, applying verdicts, and moderators' decisions sent back.
 *
 * @package ModerationService
 */

defined( 'ABSPATH' ) || exit;

/**
 * What the plugin does with comments.
 *
 * Comment meta (all prefixed _moderation_service_): external_id (our UUID, sent as external_id),
 * id (the service's id), state (sent, unsent: to be sent by WP-Cron, refused: the service will never
 * take it), status, reason, scores, decided_at, decided_by, and pending_decision (a WordPress
 * moderator's decision not yet delivered).
 */
final class Moderation_Service_Comments {

	const META = '_moderation_service_';

	/**
	 * Service status → WordPress's comment_approved at submit time.
	 */
	const APPROVED_VALUES = array(
		'approved' => 1,
		'held'     => 0,
		'rejected' => 'spam',
		'pending'  => 0,
	);

	/**
	 * Service status → wp_set_comment_status() for later verdicts.
	 */
	const STATUS_ACTIONS = array(
		'approved' => 'approve',
		'held'     => 'hold',
		'rejected' => 'spam',
	);

	/**
	 * The check made for the comment being inserted, until comment_post stores it as meta.
	 *
	 * @var array<string, mixed>|null
	 */
	private static ?array $current = null;

	/**
	 * True while the plugin itself changes a status, so the change is not sent back as a decision.
	 *
	 * @var bool
	 */
	private static bool $applying = false;

	/**
	 * Hooks comment submission and status changes.
	 */
	public static function register(): void {
		add_filter( 'pre_comment_approved', array( __CLASS__, 'check_new_comment' ), 20, 2 );
		add_action( 'comment_post', array( __CLASS__, 'remember_check' ), 10, 1 );
		add_action( 'transition_comment_status', array( __CLASS__, 'send_decision' ), 10, 3 );
	}

	/**
	 * Asks the service about a new comment and returns WordPress's comment_approved for it.
	 *
	 * Our verdict replaces WordPress's own hold rules (links, a first comment, moderation words);
	 * a comment WordPress already sends to spam or trash (its disallowed words) stays there. Without
	 * an answer the comment is held (0), never approved.
	 *
	 * @param int|string|WP_Error  $approved    WordPress's value so far.
	 * @param array<string, mixed> $commentdata The comment being inserted.
	 * @return int|string|WP_Error
	 */
	public static function check_new_comment( $approved, array $commentdata ) {
		self::$current = null;
		if ( is_wp_error( $approved ) || 'spam' === $approved || 'trash' === $approved ) {
			return $approved;
		}
		if ( ! Moderation_Service_Settings::is_configured() || ! self::is_sent_type( $commentdata ) ) {
			return $approved;
		}
		$external_id   = wp_generate_uuid4();
		$referrer      = isset( $_SERVER['HTTP_REFERER'] ) ? esc_url_raw( wp_unslash( $_SERVER['HTTP_REFERER'] ) ) : '';
		$payload       = self::payload( $commentdata, $external_id, $referrer );
		$settings      = Moderation_Service_Settings::get();
		$answer        = Moderation_Service_Client::submit( $payload, (float) $settings['wait_seconds'] );
		self::$current = self::check_record( $external_id, $answer );
		if ( is_wp_error( $answer ) ) {
			return 0;
		}
		return self::APPROVED_VALUES[ (string) ( $answer['status'] ?? 'pending' ) ] ?? 0;
	}

	/**
	 * Stores the submit-time check as comment meta once WordPress has inserted the comment.
	 *
	 * @param int $comment_id The new comment.
	 */
	public static function remember_check( $comment_id ): void {
		$check         = self::$current;
		self::$current = null;
		if ( null === $check ) {
			return;
		}
		foreach ( $check as $key => $value ) {
			update_comment_meta( (int) $comment_id, self::META . $key, $value );
		}
		if ( 'unsent' === $check['state'] ) {
			Moderation_Service_Sync::retry_soon();
		}
	}

	/**
	 * Meta to store for a submission's answer.
	 *
	 * @param string                        $external_id Our UUID for the comment.
	 * @param array<string, mixed>|WP_Error $answer      The service's answer.
	 * @return array<string, mixed>
	 */
	private static function check_record( string $external_id, $answer ): array {
		$record = array( 'external_id' => $external_id );
		if ( is_wp_error( $answer ) ) {
			$record['state'] = Moderation_Service_Client::is_retryable( $answer ) ? 'unsent' : 'refused';
			$record['error'] = $answer->get_error_message();
			return $record;
		}
		return array_merge( $record, array( 'state' => 'sent' ), self::verdict_meta( $answer ) );
	}

	/**
	 * The meta kept from a service comment summary.
	 *
	 * @param array<string, mixed> $summary A comment as the service describes it.
	 * @return array<string, mixed>
	 */
	public static function verdict_meta( array $summary ): array {
		return array(
			'id'         => (string) ( $summary['id'] ?? '' ),
			'status'     => (string) ( $summary['status'] ?? 'pending' ),
			'reason'     => (string) ( $summary['reason'] ?? '' ),
			'scores'     => isset( $summary['scores'] ) && is_array( $summary['scores'] ) ? $summary['scores'] : array(),
			'decided_at' => (string) ( $summary['decided_at'] ?? '' ),
			'decided_by' => (string) ( $summary['decided_by'] ?? '' ),
		);
	}

	/**
	 * Whether comments of this type are sent (Settings → Moderation).
	 *
	 * @param array<string, mixed> $commentdata The comment.
	 */
	private static function is_sent_type( array $commentdata ): bool {
		$type     = empty( $commentdata['comment_type'] ) ? 'comment' : (string) $commentdata['comment_type'];
		$settings = Moderation_Service_Settings::get();
		return in_array( $type, (array) $settings['comment_types'], true );
	}

	/**
	 * Everything WordPress knows about a comment, as POST /v1/comments takes it.
	 *
	 * @param array<string, mixed> $data        Comment fields (commentdata, or a stored comment).
	 * @param string               $external_id Our UUID for it.
	 * @param string               $referrer    The page the reader posted from, if known.
	 * @return array<string, mixed>
	 */
	public static function payload( array $data, string $external_id, string $referrer = '' ): array {
		$post_id = (int) ( $data['comment_post_ID'] ?? 0 );
		$payload = array(
			'external_id' => $external_id,
			'name'        => '' !== trim( (string) ( $data['comment_author'] ?? '' ) ) ? (string) $data['comment_author'] : 'Anonymous',
			'email'       => (string) ( $data['comment_author_email'] ?? '' ),
			'text'        => (string) ( $data['comment_content'] ?? '' ),
			'post_id'     => (string) $post_id,
			'author_url'  => (string) ( $data['comment_author_url'] ?? '' ),
			'author_ip'   => (string) ( $data['comment_author_IP'] ?? '' ),
			'user_agent'  => (string) ( $data['comment_agent'] ?? '' ),
			'referrer'    => $referrer,
			'permalink'   => $post_id ? (string) get_permalink( $post_id ) : '',
			'language'    => str_replace( '_', '-', get_locale() ),
			'meta'        => array(
				'site'         => home_url(),
				'comment_type' => empty( $data['comment_type'] ) ? 'comment' : (string) $data['comment_type'],
				'user_id'      => (int) ( $data['user_id'] ?? 0 ),
			),
		);
		if ( ! empty( $data['comment_parent'] ) ) {
			$payload['parent_id'] = (string) (int) $data['comment_parent'];
		}
		if ( ! empty( $data['comment_date_gmt'] ) && '0000-00-00 00:00:00' !== $data['comment_date_gmt'] ) {
			$payload['created_at'] = str_replace( ' ', 'T', (string) $data['comment_date_gmt'] ) . 'Z';
		}
		// Empty optional fields are left out rather than sent as "" (which the service refuses for URLs).
		return array_filter(
			$payload,
			static function ( $value ) {
				return '' !== $value;
			}
		);
	}

	/**
	 * The WordPress comment with this external_id, or 0.
	 *
	 * @param string $external_id Our UUID.
	 */
	public static function find_by_external_id( string $external_id ): int {
		$ids = get_comments(
			array(
				'meta_key'   => self::META . 'external_id', // phpcs:ignore WordPress.DB.SlowDBQuery.slow_db_query_meta_key
				'meta_value' => $external_id, // phpcs:ignore WordPress.DB.SlowDBQuery.slow_db_query_meta_value
				'status'     => 'any',
				'type'       => 'all',
				'number'     => 1,
				'fields'     => 'ids',
			)
		);
		return empty( $ids ) ? 0 : (int) $ids[0];
	}

	/**
	 * Applies a verdict from the service (webhook or sync) to a comment. Idempotent: a verdict older
	 * than the one stored, or one the comment already has, changes nothing.
	 *
	 * @param int                  $comment_id The WordPress comment.
	 * @param array<string, mixed> $summary    The service's comment summary.
	 * @return string What happened: applied, unchanged, stale, own-decision, local-decision, pending.
	 */
	public static function apply_verdict( int $comment_id, array $summary ): string {
		$status     = (string) ( $summary['status'] ?? '' );
		$decided_by = (string) ( $summary['decided_by'] ?? '' );
		if ( ! isset( self::STATUS_ACTIONS[ $status ] ) ) {
			return 'pending';
		}
		if ( 'api-key' === $decided_by ) {
			// A decision this site sent (a WordPress moderator's): WordPress already shows it.
			return 'own-decision';
		}
		$stored_at = (string) get_comment_meta( $comment_id, self::META . 'decided_at', true );
		$new_at    = (string) ( $summary['decided_at'] ?? '' );
		if ( '' !== $stored_at && '' !== $new_at && strtotime( $new_at ) < strtotime( $stored_at ) ) {
			return 'stale';
		}
		if ( in_array( $decided_by, array( 'model', 'system' ), true ) && '' !== (string) get_comment_meta( $comment_id, self::META . 'local_decision', true ) ) {
			// A WordPress moderator decided while the service had not scored it yet; the human wins.
			return 'local-decision';
		}
		foreach ( self::verdict_meta( $summary ) as $key => $value ) {
			update_comment_meta( $comment_id, self::META . $key, $value );
		}
		$action  = self::STATUS_ACTIONS[ $status ];
		$current = wp_get_comment_status( $comment_id );
		$already = array(
			'approve' => 'approved',
			'hold'    => 'unapproved',
			'spam'    => 'spam',
		);
		if ( $current === $already[ $action ] ) {
			return 'unchanged';
		}
		self::$applying = true;
		try {
			wp_set_comment_status( $comment_id, $action );
		} finally {
			self::$applying = false;
		}
		return 'applied';
	}

	/**
	 * Sends a WordPress moderator's decision to the service as a label.
	 *
	 * @param string     $new_status The new status (approved, unapproved, spam, trash, delete).
	 * @param string     $old_status The old status.
	 * @param WP_Comment $comment    The comment.
	 */
	public static function send_decision( $new_status, $old_status, $comment ): void {
		if ( self::$applying || ! $comment instanceof WP_Comment ) {
			return;
		}
		$comment_id = (int) $comment->comment_ID;
		if ( '' === (string) get_comment_meta( $comment_id, self::META . 'external_id', true ) ) {
			return; // Never sent to the service.
		}
		$decision = self::decision_for( (string) $new_status, (string) $old_status );
		if ( null === $decision ) {
			return;
		}
		update_comment_meta( $comment_id, self::META . 'local_decision', $decision );
		$service_id = (string) get_comment_meta( $comment_id, self::META . 'id', true );
		if ( '' === $service_id ) {
			// The service has not got the comment yet: WP-Cron sends the decision after the comment.
			update_comment_meta( $comment_id, self::META . 'pending_decision', $decision );
			return;
		}
		self::deliver_decision( $comment_id, $service_id, $decision );
	}

	/**
	 * Sends a decision; keeps it for WP-Cron if the service cannot take it now.
	 *
	 * @param int    $comment_id The WordPress comment.
	 * @param string $service_id The service's id.
	 * @param string $decision   The decision.
	 */
	public static function deliver_decision( int $comment_id, string $service_id, string $decision ): bool {
		$answer = Moderation_Service_Client::decide( $service_id, $decision );
		if ( is_wp_error( $answer ) && Moderation_Service_Client::is_retryable( $answer ) ) {
			update_comment_meta( $comment_id, self::META . 'pending_decision', $decision );
			Moderation_Service_Sync::retry_soon();
			return false;
		}
		delete_comment_meta( $comment_id, self::META . 'pending_decision' );
		if ( ! is_wp_error( $answer ) && isset( $answer['comment'] ) && is_array( $answer['comment'] ) ) {
			foreach ( self::verdict_meta( $answer['comment'] ) as $key => $value ) {
				update_comment_meta( $comment_id, self::META . $key, $value );
			}
		}
		return true;
	}

	/**
	 * The service decision for a WordPress status change, or null for changes that teach nothing
	 * (a comment restored from the trash, a deletion).
	 *
	 * @param string $new_status New status.
	 * @param string $old_status Old status.
	 */
	public static function decision_for( string $new_status, string $old_status ): ?string {
		switch ( $new_status ) {
			case 'approved':
				return 'approve';
			case 'spam':
				return 'spam';
			case 'trash':
				return 'trash';
			case 'unapproved':
				if ( 'spam' === $old_status ) {
					return 'ham';
				}
				return 'approved' === $old_status ? 'hold' : null;
		}
		return null;
	}

	/**
	 * Lets the sync apply verdicts without echoing them back.
	 *
	 * @param callable $change Code that changes comment statuses.
	 */
	public static function without_feedback( callable $change ): void {
		self::$applying = true;
		try {
			$change();
		} finally {
			self::$applying = false;
		}
	}
}
