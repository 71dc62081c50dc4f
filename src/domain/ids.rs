#![warn(missing_docs)]
//! Typed identifiers. Generated ids are UUID v7, so they sort by creation time.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new, time-ordered id.
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }

            /// The UUID inside.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

uuid_id!(
    /// A tenant.
    WorkspaceId
);
uuid_id!(
    /// A webhook (endpoint registration).
    WebhookId
);
uuid_id!(
    /// One event to one webhook; also the `webhook-id` header value.
    DeliveryId
);
uuid_id!(
    /// A replay running in the background.
    ReplayId
);

impl DeliveryId {
    /// The smallest id generated at `at`: every delivery created before `at` has a smaller one.
    pub fn first_at(at: chrono::DateTime<chrono::Utc>) -> Self {
        let ms = u64::try_from(at.timestamp_millis()).unwrap_or_default();
        Self(uuid::Builder::from_unix_timestamp_millis(ms, &[0; 10]).into_uuid())
    }
}

impl WorkspaceId {
    /// The `default` workspace, which always exists (created by the first migration).
    pub const DEFAULT: WorkspaceId = WorkspaceId(Uuid::nil());
}
