<?php
/**
 * The Comments screen: a column with our status, the reason and the top scores.
 *
 * @package ModerationService
 */

defined( 'ABSPATH' ) || exit;

/**
 * The "Moderation" column.
 */
final class Moderation_Service_Admin {

	const COLUMN     = 'moderation_service';
	const TOP_SCORES = 3;

	/**
	 * Hooks the column.
	 */
	public static function register(): void {
		add_filter( 'manage_edit-comments_columns', array( __CLASS__, 'add_column' ) );
		add_action( 'manage_comments_custom_column', array( __CLASS__, 'render_column' ), 10, 2 );
	}

	/**
	 * Adds the column.
	 *
	 * @param array<string, string> $columns The Comments screen's columns.
	 * @return array<string, string>
	 */
	public static function add_column( array $columns ): array {
		$columns[ self::COLUMN ] = __( 'Moderation', 'moderation-service' );
		return $columns;
	}

	/**
	 * Prints a comment's status, reason and highest scores.
	 *
	 * @param string $column     The column being printed.
	 * @param int    $comment_id The comment.
	 */
	public static function render_column( $column, $comment_id ): void {
		if ( self::COLUMN !== $column ) {
			return;
		}
		$meta  = Moderation_Service_Comments::META;
		$state = (string) get_comment_meta( (int) $comment_id, $meta . 'state', true );
		if ( '' === $state ) {
			echo '<span class="moderation-service-status">&mdash;</span>';
			return;
		}
		$status = 'sent' === $state ? (string) get_comment_meta( (int) $comment_id, $meta . 'status', true ) : $state;
		$reason = (string) get_comment_meta( (int) $comment_id, $meta . 'reason', true );
		$scores = get_comment_meta( (int) $comment_id, $meta . 'scores', true );
		printf( '<strong class="moderation-service-status">%s</strong>', esc_html( $status ) );
		if ( '' !== $reason ) {
			printf( '<br /><span class="moderation-service-reason">%s</span>', esc_html( $reason ) );
		}
		if ( is_array( $scores ) && $scores ) {
			arsort( $scores );
			echo '<ul class="moderation-service-scores">';
			foreach ( array_slice( $scores, 0, self::TOP_SCORES, true ) as $attribute => $score ) {
				printf( '<li>%1$s %2$s</li>', esc_html( (string) $attribute ), esc_html( number_format_i18n( (float) $score, 2 ) ) );
			}
			echo '</ul>';
		}
	}
}
