//! A webhook's recent activity, minute by minute, for the dashboard's chart: how many
//! deliveries were created each minute, by status, and how long their latest attempts took.
//! Built from the database's counts, so every server shows the same figures whoever owns
//! the webhook.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::DeliveryStatus;

/// How many of one webhook's deliveries created in one minute are in one status with one
/// latest-attempt duration (`None`: not attempted yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinuteCount {
    /// Minutes since the Unix epoch.
    pub minute: i64,
    pub status: DeliveryStatus,
    pub duration_ms: Option<i64>,
    pub count: i64,
}

/// One minute of a webhook's activity.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ActivityMinute {
    /// The start of the minute.
    pub minute: DateTime<Utc>,
    pub succeeded: i64,
    pub failed: i64,
    pub pending: i64,
    pub cancelled: i64,
    /// Of the latest attempts of that minute's deliveries; null when none was attempted.
    pub p50_ms: Option<i64>,
    pub p99_ms: Option<i64>,
}

/// Every minute from `first_minute` for `minutes` minutes, oldest first, zero where nothing
/// was created.
pub fn by_minute(first_minute: i64, minutes: usize, counts: &[MinuteCount]) -> Vec<ActivityMinute> {
    let mut by_minute: BTreeMap<i64, Vec<&MinuteCount>> = BTreeMap::new();
    counts.iter().for_each(|c| by_minute.entry(c.minute).or_default().push(c));
    (first_minute..first_minute + minutes as i64)
        .map(|minute| {
            let of_minute = by_minute.get(&minute).map(Vec::as_slice).unwrap_or_default();
            let total = |status| of_minute.iter().filter(|c| c.status == status).map(|c| c.count).sum();
            let mut durations: Vec<(i64, i64)> =
                of_minute.iter().filter_map(|c| c.duration_ms.map(|d| (d, c.count))).collect();
            durations.sort_unstable();
            ActivityMinute {
                minute: DateTime::from_timestamp(minute * 60, 0).unwrap_or_default(),
                succeeded: total(DeliveryStatus::Succeeded),
                failed: total(DeliveryStatus::Failed),
                pending: total(DeliveryStatus::Pending),
                cancelled: total(DeliveryStatus::Cancelled),
                p50_ms: percentile(&durations, 50),
                p99_ms: percentile(&durations, 99),
            }
        })
        .collect()
}

/// The nearest-rank percentile of sorted `(value, count)` pairs.
fn percentile(sorted: &[(i64, i64)], pct: i64) -> Option<i64> {
    let total: i64 = sorted.iter().map(|(_, n)| n).sum();
    if total == 0 {
        return None;
    }
    // Nearest rank: the smallest value with at least pct % of the counts at or below it.
    let rank = ((total * pct + 99) / 100).max(1);
    let mut seen = 0;
    sorted
        .iter()
        .find(|(_, n)| {
            seen += n;
            seen >= rank
        })
        .map(|(value, _)| *value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(minute: i64, status: DeliveryStatus, duration_ms: Option<i64>, count: i64) -> MinuteCount {
        MinuteCount { minute, status, duration_ms, count }
    }

    #[test]
    fn every_minute_is_there_with_its_counts_and_percentiles() {
        let counts = [
            count(100, DeliveryStatus::Succeeded, Some(10), 98),
            count(100, DeliveryStatus::Failed, Some(500), 2),
            count(100, DeliveryStatus::Pending, None, 5),
            count(102, DeliveryStatus::Cancelled, None, 1),
        ];
        let minutes = by_minute(99, 4, &counts);
        assert_eq!(minutes.len(), 4);
        assert_eq!(minutes[0].minute.timestamp(), 99 * 60);
        assert_eq!((minutes[0].succeeded, minutes[0].p50_ms), (0, None));
        let busy = &minutes[1];
        assert_eq!((busy.succeeded, busy.failed, busy.pending, busy.cancelled), (98, 2, 5, 0));
        // 100 attempted: the 50th is 10 ms, the 99th is one of the two 500 ms ones.
        assert_eq!((busy.p50_ms, busy.p99_ms), (Some(10), Some(500)));
        assert_eq!((minutes[3].cancelled, minutes[3].p99_ms), (1, None));
    }

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let sorted = [(1, 1), (2, 1), (3, 1), (4, 1)];
        assert_eq!(percentile(&sorted, 50), Some(2));
        assert_eq!(percentile(&sorted, 99), Some(4));
        assert_eq!(percentile(&[(7, 1)], 99), Some(7));
        assert_eq!(percentile(&[], 50), None);
    }
}
