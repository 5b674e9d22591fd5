<?php
/**
 * Settings → Moderation: service URL, API key, webhook secret, wait time and comment types.
 *
 * @package ModerationService
 */

defined( 'ABSPATH' ) || exit;

/**
 * One option (an array) holds every setting; the Settings API handles the nonce and the capability.
 */
final class Moderation_Service_Settings {

	const OPTION = 'moderation_service_settings';
	const PAGE   = 'moderation-service';

	/**
	 * The longest wait the service accepts by default (its MAX_WAIT_SECONDS).
	 */
	const MAX_WAIT_SECONDS = 10;

	/**
	 * Hooks the settings page.
	 */
	public static function register(): void {
		add_action( 'admin_init', array( __CLASS__, 'register_fields' ) );
		add_action( 'admin_menu', array( __CLASS__, 'add_page' ) );
	}

	/**
	 * The defaults: a verdict is awaited for 2 s, and only ordinary comments are sent.
	 *
	 * @return array<string, mixed>
	 */
	public static function defaults(): array {
		return array(
			'service_url'    => '',
			'api_key'        => '',
			'webhook_secret' => '',
			'wait_seconds'   => 2,
			'comment_types'  => array( 'comment' ),
		);
	}

	/**
	 * The current settings, with defaults for anything unset.
	 *
	 * @return array<string, mixed>
	 */
	public static function get(): array {
		$stored = get_option( self::OPTION, array() );
		return array_merge( self::defaults(), is_array( $stored ) ? $stored : array() );
	}

	/**
	 * Whether the plugin can talk to the service at all.
	 */
	public static function is_configured(): bool {
		$settings = self::get();
		return '' !== $settings['service_url'] && '' !== $settings['api_key'];
	}

	/**
	 * Comment types offered on the settings page.
	 *
	 * @return array<string, string>
	 */
	public static function comment_types(): array {
		return array(
			'comment'   => __( 'Comments', 'moderation-service' ),
			'pingback'  => __( 'Pingbacks', 'moderation-service' ),
			'trackback' => __( 'Trackbacks', 'moderation-service' ),
		);
	}

	/**
	 * Adds Settings → Moderation.
	 */
	public static function add_page(): void {
		add_options_page(
			__( 'Moderation service', 'moderation-service' ),
			__( 'Moderation', 'moderation-service' ),
			'manage_options',
			self::PAGE,
			array( __CLASS__, 'render_page' )
		);
	}

	/**
	 * Declares the option and its fields.
	 */
	public static function register_fields(): void {
		register_setting(
			self::PAGE,
			self::OPTION,
			array(
				'type'              => 'array',
				'sanitize_callback' => array( __CLASS__, 'sanitize' ),
				'default'           => self::defaults(),
			)
		);
		add_settings_section( 'moderation_service_main', '', '__return_false', self::PAGE );
		$fields = array(
			'service_url'    => __( 'Service URL', 'moderation-service' ),
			'api_key'        => __( 'API key', 'moderation-service' ),
			'webhook_secret' => __( 'Webhook secret', 'moderation-service' ),
			'wait_seconds'   => __( 'Wait for a verdict (seconds)', 'moderation-service' ),
			'comment_types'  => __( 'Send these comment types', 'moderation-service' ),
		);
		foreach ( $fields as $name => $label ) {
			add_settings_field(
				'moderation_service_' . $name,
				$label,
				array( __CLASS__, 'render_field' ),
				self::PAGE,
				'moderation_service_main',
				array(
					'name'      => $name,
					'label_for' => 'moderation_service_' . $name,
				)
			);
		}
	}

	/**
	 * Cleans what the form posted; bad values fall back to the current ones with a notice.
	 *
	 * @param mixed $input The posted option value.
	 * @return array<string, mixed>
	 */
	public static function sanitize( $input ): array {
		$current = self::get();
		if ( ! is_array( $input ) ) {
			return $current;
		}
		$clean = $current;
		$url   = isset( $input['service_url'] ) ? esc_url_raw( trim( (string) $input['service_url'] ), array( 'http', 'https' ) ) : '';
		if ( isset( $input['service_url'] ) && '' !== trim( (string) $input['service_url'] ) && '' === $url ) {
			add_settings_error( self::OPTION, 'service_url', __( 'The service URL must be an http or https URL.', 'moderation-service' ) );
		} else {
			$clean['service_url'] = untrailingslashit( $url );
		}
		foreach ( array( 'api_key', 'webhook_secret' ) as $secret ) {
			if ( isset( $input[ $secret ] ) ) {
				$clean[ $secret ] = sanitize_text_field( (string) $input[ $secret ] );
			}
		}
		if ( isset( $input['wait_seconds'] ) ) {
			$wait = (float) $input['wait_seconds'];
			if ( $wait < 0 || $wait > self::MAX_WAIT_SECONDS ) {
				add_settings_error( self::OPTION, 'wait_seconds', __( 'The wait must be between 0 and 10 seconds.', 'moderation-service' ) );
			} else {
				$clean['wait_seconds'] = $wait;
			}
		}
		$types                  = isset( $input['comment_types'] ) && is_array( $input['comment_types'] ) ? array_map( 'sanitize_key', $input['comment_types'] ) : array();
		$clean['comment_types'] = array_values( array_intersect( $types, array_keys( self::comment_types() ) ) );
		return $clean;
	}

	/**
	 * Renders one field.
	 *
	 * @param array<string, string> $args The field's name.
	 */
	public static function render_field( array $args ): void {
		$settings = self::get();
		$name     = $args['name'];
		$id       = 'moderation_service_' . $name;
		$field    = self::OPTION . '[' . $name . ']';
		switch ( $name ) {
			case 'comment_types':
				foreach ( self::comment_types() as $type => $label ) {
					printf(
						'<label><input type="checkbox" name="%1$s[]" value="%2$s" %3$s /> %4$s</label><br />',
						esc_attr( $field ),
						esc_attr( $type ),
						checked( in_array( $type, (array) $settings['comment_types'], true ), true, false ),
						esc_html( $label )
					);
				}
				break;
			case 'wait_seconds':
				printf(
					'<input type="number" min="0" max="10" step="0.5" id="%1$s" name="%2$s" value="%3$s" class="small-text" /><p class="description">%4$s</p>',
					esc_attr( $id ),
					esc_attr( $field ),
					esc_attr( (string) $settings['wait_seconds'] ),
					esc_html__( 'How long a reader waits for the verdict when posting. Without a verdict in time the comment waits in the moderation queue until the service decides.', 'moderation-service' )
				);
				break;
			case 'webhook_secret':
				printf(
					'<input type="password" id="%1$s" name="%2$s" value="%3$s" class="regular-text" autocomplete="off" /><p class="description">%4$s <code>%5$s</code></p>',
					esc_attr( $id ),
					esc_attr( $field ),
					esc_attr( (string) $settings['webhook_secret'] ),
					esc_html__( 'Printed when the key was created with this webhook URL:', 'moderation-service' ),
					esc_html( Moderation_Service_Webhook::url() )
				);
				break;
			default:
				printf(
					'<input type="%1$s" id="%2$s" name="%3$s" value="%4$s" class="regular-text" autocomplete="off" />',
					'api_key' === $name ? 'password' : 'url',
					esc_attr( $id ),
					esc_attr( $field ),
					esc_attr( (string) $settings[ $name ] )
				);
		}
	}

	/**
	 * Renders Settings → Moderation.
	 */
	public static function render_page(): void {
		if ( ! current_user_can( 'manage_options' ) ) {
			return;
		}
		echo '<div class="wrap"><h1>' . esc_html( get_admin_page_title() ) . '</h1><form action="options.php" method="post">';
		settings_fields( self::PAGE );
		do_settings_sections( self::PAGE );
		submit_button();
		echo '</form></div>';
	}
}
