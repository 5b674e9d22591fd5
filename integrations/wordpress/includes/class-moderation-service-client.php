<?php
/**
 * The service's HTTP API, through wp_remote_request.
 *
 * @package ModerationService
 */

defined( 'ABSPATH' ) || exit;

/**
 * Calls to the moderation service. Every call returns the decoded JSON answer, or a WP_Error when the
 * service could not be reached, timed out or answered with an error.
 */
final class Moderation_Service_Client {

	/**
	 * Extra seconds on top of the verdict wait for connecting and for the answer itself.
	 */
	const NETWORK_ALLOWANCE_SECONDS = 1;

	/**
	 * Timeout for calls made from the admin screens and from WP-Cron.
	 */
	const BACKGROUND_TIMEOUT_SECONDS = 5;

	/**
	 * Posts a comment; waits up to $wait seconds for its verdict.
	 *
	 * @param array<string, mixed> $payload The comment as the service's POST /v1/comments takes it.
	 * @param float                $wait    Seconds to wait for a verdict.
	 * @return array<string, mixed>|WP_Error
	 */
	public static function submit( array $payload, float $wait ) {
		$path = '/v1/comments?wait=' . rawurlencode( (string) $wait );
		return self::request( 'POST', $path, $payload, $wait + self::NETWORK_ALLOWANCE_SECONDS );
	}

	/**
	 * A WordPress moderator's decision on a comment the service knows.
	 *
	 * @param string $service_id The service's comment id.
	 * @param string $decision   approve, hold, spam, ham or trash.
	 * @return array<string, mixed>|WP_Error
	 */
	public static function decide( string $service_id, string $decision ) {
		return self::request(
			'POST',
			'/v1/comments/' . rawurlencode( $service_id ) . '/decision',
			array( 'decision' => $decision ),
			self::BACKGROUND_TIMEOUT_SECONDS
		);
	}

	/**
	 * A comment's current verdict.
	 *
	 * @param string $service_id The service's comment id.
	 * @return array<string, mixed>|WP_Error
	 */
	public static function fetch( string $service_id ) {
		return self::request( 'GET', '/v1/comments/' . rawurlencode( $service_id ), null, self::BACKGROUND_TIMEOUT_SECONDS );
	}

	/**
	 * One call.
	 *
	 * @param string                    $method  HTTP method.
	 * @param string                    $path    Path and query under the service URL.
	 * @param array<string, mixed>|null $body    JSON body.
	 * @param float                     $timeout Seconds.
	 * @return array<string, mixed>|WP_Error
	 */
	private static function request( string $method, string $path, ?array $body, float $timeout ) {
		$settings = Moderation_Service_Settings::get();
		if ( ! Moderation_Service_Settings::is_configured() ) {
			return new WP_Error( 'moderation_service_unconfigured', 'The moderation service URL or API key is not set.' );
		}
		$args = array(
			'method'  => $method,
			'timeout' => $timeout,
			'headers' => array(
				'Authorization' => 'Bearer ' . $settings['api_key'],
				'Accept'        => 'application/json',
			),
		);
		if ( null !== $body ) {
			$args['headers']['Content-Type'] = 'application/json';
			$args['body']                    = wp_json_encode( $body );
		}
		$response = wp_remote_request( $settings['service_url'] . $path, $args );
		if ( is_wp_error( $response ) ) {
			return $response;
		}
		$code    = (int) wp_remote_retrieve_response_code( $response );
		$decoded = json_decode( wp_remote_retrieve_body( $response ), true );
		if ( $code < 200 || $code >= 300 || ! is_array( $decoded ) ) {
			$message = is_array( $decoded ) && isset( $decoded['error']['message'] ) ? (string) $decoded['error']['message'] : 'unexpected answer';
			return new WP_Error( 'moderation_service_http_' . $code, $message, array( 'status' => $code ) );
		}
		return $decoded;
	}

	/**
	 * Whether an error means "try again later" (down, timed out, 5xx, rate limited) rather than
	 * "this request will never be accepted" (a 4xx naming a bad field).
	 *
	 * @param WP_Error $error The error from a call.
	 */
	public static function is_retryable( WP_Error $error ): bool {
		$data   = $error->get_error_data();
		$status = is_array( $data ) && isset( $data['status'] ) ? (int) $data['status'] : 0;
		return 0 === $status || $status >= 500 || 429 === $status || 401 === $status;
	}
}
