//! Health checks, as Docker runs them.
//!
//! * Configuration: [`HealthConfig`] (the image's `HEALTHCHECK` overridden by `--health-*`),
//!   stored in the container's config.
//! * Schedule: nothing of berth runs for a container without a check. With one, the
//!   container's supervisor (`berth-supervise`, or the in-process monitor loop through
//!   [`Scheduler`]) starts `berth __healthcheck ID` when a probe is due: after the interval
//!   (the start interval while the container is still `starting` inside its start period),
//!   counted from the end of the previous probe. The supervisor learns the timing from
//!   [`SUPERVISE_ENV`] and whether the container has been healthy from the exit status of
//!   `__healthcheck` (0 = healthy).
//! * One probe ([`probe`]): the test command runs inside the container's namespaces (as
//!   `exec` does), its combined output is kept up to 4096 bytes, it is killed after the
//!   timeout; the result goes into the `health` table (owned by this module): status,
//!   failing streak and the last 5 results, as `inspect` shows under `State.Health`. A change
//!   of status is recorded as Docker's `health_status: STATUS` event.
//! * Acting on it ([`restart_unhealthy`], only with [`HealthConfig::restart_unhealthy`]): the
//!   probe that finds the container newly unhealthy stops it when its restart policy allows a
//!   restart, and the monitor's restart policy brings it back (`kill` and `die` events, then
//!   `start`).
//!
//! Files: `config.rs` (the check's configuration and the `--health-*` flags), `status.rs`
//! (the `health` table and Docker's status rules), `probe.rs` (one probe, and acting on an
//! unhealthy container), `schedule.rs` (the in-process probe schedule).

mod config;
mod probe;
mod schedule;
mod status;

pub use config::{parse_duration, HealthConfig, HealthFlags};
pub use probe::{probe, restart_unhealthy};
pub use schedule::Scheduler;
pub use status::{all_status, forget, get, record, reset, Health, HealthResult};

/// Environment variable with which the monitor hands the probe timing to `berth-supervise`:
/// `INTERVAL_MS:START_INTERVAL_MS:START_PERIOD_MS`.
pub const SUPERVISE_ENV: &str = "BERTH_HEALTH";
