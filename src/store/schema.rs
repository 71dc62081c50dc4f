//! The diesel schema, shared by SQLite and PostgreSQL.

diesel::table! {
    workspaces (id) {
        id -> Text,
        name -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    webhooks (id) {
        id -> Text,
        workspace_id -> Text,
        name -> Text,
        url -> Text,
        events -> Text,
        secret -> Text,
        previous_secret -> Nullable<Text>,
        previous_secret_until -> Nullable<BigInt>,
        enabled -> Bool,
        disabled_reason -> Nullable<Text>,
        timeout_ms -> Integer,
        max_retries -> Integer,
        backoff_base_ms -> Integer,
        max_in_flight -> Integer,
        rate_limit_per_sec -> Nullable<Integer>,
        headers -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    events (workspace_id, id) {
        workspace_id -> Text,
        id -> Text,
        event_type -> Text,
        data -> Text,
        body_hash -> Text,
        matched_webhooks -> Integer,
        created_at -> BigInt,
    }
}

diesel::table! {
    deliveries (id) {
        id -> Text,
        workspace_id -> Text,
        webhook_id -> Text,
        event_id -> Text,
        event_type -> Text,
        status -> Text,
        attempt_count -> Integer,
        next_attempt_at -> Nullable<BigInt>,
        status_code -> Nullable<Integer>,
        error_message -> Nullable<Text>,
        response_body -> Nullable<Text>,
        duration_ms -> Nullable<BigInt>,
        created_at -> BigInt,
        completed_at -> Nullable<BigInt>,
        retries_used -> Integer,
        last_attempt_at -> Nullable<BigInt>,
        failure_reason -> Nullable<Text>,
    }
}

diesel::table! {
    attempts (delivery_id, attempt) {
        delivery_id -> Text,
        attempt -> Integer,
        workspace_id -> Text,
        started_at -> BigInt,
        duration_ms -> BigInt,
        status_code -> Nullable<Integer>,
        error_message -> Nullable<Text>,
        response_body -> Nullable<Text>,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Text,
        workspace_id -> Text,
        key_hash -> Text,
        created_at -> BigInt,
        revoked_at -> Nullable<BigInt>,
        prefix -> Text,
        last_used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    settings (name) {
        name -> Text,
        value -> Text,
    }
}

diesel::table! {
    replays (id) {
        id -> Text,
        workspace_id -> Text,
        webhook_id -> Text,
        status -> Text,
        since -> BigInt,
        state -> Text,
        total -> BigInt,
        requeued -> BigInt,
        error -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> BigInt,
        finished_at -> Nullable<BigInt>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(workspaces, webhooks, events, deliveries, attempts, api_keys);
