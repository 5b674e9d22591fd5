<?php
/**
 * WP-Cron: comments and decisions that could not reach the service, and verdicts never heard of.
 *
 * @package ModerationService
 */

defined( 'ABSPATH' ) || exit;

/**
 * The retry and sync job.
 *
 * Every five minutes (and a minute after a failed call) it sends the comments held because the
 * service was down, sends moderators' decisions that could not be delivered, and asks for the
 * verdict of comments sent long ago that are still pending here (a webhook that never arrived).
 */
final class Moderation_Service_Sync {

	const HOOK            = 'moderation_service_sync';
	const SCHEDULE        = 'moderation_service_five_minutes';
	const BATCH           = 50;
	const RETRY_DELAY     = 60;
	const STALE_AFTER_SEC = 600;

	/**
	 * Hooks the job and its schedule.
	 */
	public static function register(): void {
		add_filter( 'cron_schedules', array( __CLASS__, 'add_schedule' ) ); // phpcs:ignore WordPress.WP.CronInterval.CronSchedulesInterval
		add_action( self::HOOK, array( __CLASS__, 'run' ) );
	}

	/**
	 * Adds the five-minute schedule.
	 *
	 * @param array<string, array<string, mixed>> $schedules WordPress's schedules.
	 * @return array<string, array<string, mixed>>
	 */
	public static function add_schedule( array $schedules ): array {
		$schedules[ self::SCHEDULE ] = array(
			'interval' => 5 * MINUTE_IN_SECONDS,
			'display'  => __( 'Every five minutes', 'moderation-service' ),
		);
		return $schedules;
	}

	/**
	 * Schedules the job (on activation).
	 */
	public static function schedule(): void {
		if ( ! wp_next_scheduled( self::HOOK ) ) {
			wp_schedule_event( time() + 5 * MINUTE_IN_SECONDS, self::SCHEDULE, self::HOOK );
		}
	}

	/**
	 * Removes the job (on deactivation).
	 */
	public static function unschedule(): void {
		wp_unschedule_hook( self::HOOK ); // The recurring job and any one-off retry (which has arguments).
	}

	/**
	 * Runs the job a minute from now, once, so a short outage is caught up quickly.
	 */
	public static function retry_soon(): void {
		$at = time() + self::RETRY_DELAY;
		if ( ! wp_next_scheduled( self::HOOK, array( 'retry' ) ) ) {
			wp_schedule_single_event( $at, self::HOOK, array( 'retry' ) );
		}
	}

	/**
	 * One pass.
	 *
	 * @return array<string, int> What was done, by kind.
	 */
	public static function run(): array {
		$report = array(
			'sent'      => 0,
			'decisions' => 0,
			'fetched'   => 0,
		);
		if ( ! Moderation_Service_Settings::is_configured() ) {
			return $report;
		}
		$report['sent']      = self::send_unsent();
		$report['decisions'] = self::send_pending_decisions();
		$report['fetched']   = self::fetch_stale();
		Moderation_Service_Webhook::forget_old_signatures();
		return $report;
	}

	/**
	 * Comment ids whose meta $key is $value (or exists, with null), oldest first.
	 *
	 * @param string      $key   Meta key without the prefix.
	 * @param string|null $value Meta value.
	 * @return int[]
	 */
	private static function comments_with( string $key, ?string $value ): array {
		$query = array(
			'key' => Moderation_Service_Comments::META . $key,
		);
		if ( null !== $value ) {
			$query['value'] = $value;
		}
		return array_map(
			'intval',
			get_comments(
				array(
					'meta_query' => array( $query ), // phpcs:ignore WordPress.DB.SlowDBQuery.slow_db_query_meta_query
					'status'     => 'any',
					'type'       => 'all',
					'number'     => self::BATCH,
					'orderby'    => 'comment_ID',
					'order'      => 'ASC',
					'fields'     => 'ids',
				)
			)
		);
	}

	/**
	 * Sends comments stored while the service was unreachable, with their original external_id.
	 */
	private static function send_unsent(): int {
		$sent = 0;
		foreach ( self::comments_with( 'state', 'unsent' ) as $comment_id ) {
			$comment     = get_comment( $comment_id );
			$external_id = (string) get_comment_meta( $comment_id, Moderation_Service_Comments::META . 'external_id', true );
			if ( ! $comment instanceof WP_Comment || '' === $external_id ) {
				continue;
			}
			// No wait: the verdict comes back by webhook (or is fetched on a later pass).
			$answer = Moderation_Service_Client::submit( Moderation_Service_Comments::payload( (array) $comment->to_array(), $external_id ), 0 );
			if ( is_wp_error( $answer ) ) {
				if ( Moderation_Service_Client::is_retryable( $answer ) ) {
					self::retry_soon();
					break; // Still down: the rest can wait for the next pass.
				}
				update_comment_meta( $comment_id, Moderation_Service_Comments::META . 'state', 'refused' );
				update_comment_meta( $comment_id, Moderation_Service_Comments::META . 'error', $answer->get_error_message() );
				continue;
			}
			update_comment_meta( $comment_id, Moderation_Service_Comments::META . 'state', 'sent' );
			update_comment_meta( $comment_id, Moderation_Service_Comments::META . 'id', (string) ( $answer['id'] ?? '' ) );
			self::apply( $comment_id, $answer );
			++$sent;
		}
		return $sent;
	}

	/**
	 * Delivers WordPress moderators' decisions that could not be delivered when they were taken.
	 */
	private static function send_pending_decisions(): int {
		$delivered = 0;
		foreach ( self::comments_with( 'pending_decision', null ) as $comment_id ) {
			$service_id = (string) get_comment_meta( $comment_id, Moderation_Service_Comments::META . 'id', true );
			$decision   = (string) get_comment_meta( $comment_id, Moderation_Service_Comments::META . 'pending_decision', true );
			if ( '' === $service_id || '' === $decision ) {
				continue; // The comment itself has not reached the service yet.
			}
			if ( ! Moderation_Service_Comments::deliver_decision( $comment_id, $service_id, $decision ) ) {
				break;
			}
			++$delivered;
		}
		return $delivered;
	}

	/**
	 * Asks for the verdict of comments sent a while ago that are still pending here.
	 */
	private static function fetch_stale(): int {
		$fetched = 0;
		foreach ( self::comments_with( 'status', 'pending' ) as $comment_id ) {
			$comment    = get_comment( $comment_id );
			$service_id = (string) get_comment_meta( $comment_id, Moderation_Service_Comments::META . 'id', true );
			if ( ! $comment instanceof WP_Comment || '' === $service_id ) {
				continue;
			}
			if ( time() - (int) strtotime( $comment->comment_date_gmt . ' UTC' ) < self::STALE_AFTER_SEC ) {
				continue; // Its webhook may still be on the way.
			}
			$answer = Moderation_Service_Client::fetch( $service_id );
			if ( is_wp_error( $answer ) ) {
				break;
			}
			self::apply( $comment_id, $answer );
			++$fetched;
		}
		return $fetched;
	}

	/**
	 * Stores and applies a summary the service answered with.
	 *
	 * @param int                  $comment_id The WordPress comment.
	 * @param array<string, mixed> $summary    The service's comment summary.
	 */
	private static function apply( int $comment_id, array $summary ): void {
		if ( 'pending' === ( $summary['status'] ?? 'pending' ) ) {
			foreach ( Moderation_Service_Comments::verdict_meta( $summary ) as $key => $value ) {
				update_comment_meta( $comment_id, Moderation_Service_Comments::META . $key, $value );
			}
			return;
		}
		Moderation_Service_Comments::apply_verdict( $comment_id, $summary );
	}
}
