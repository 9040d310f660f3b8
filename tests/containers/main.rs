//! Container tests: the project's own images (`tallyfy-bridge:local`, `tallyfy-sandbox:local`,
//! `tallyfy-postgres:local`) run under testcontainers and under the compose files. Skipped with
//! a notice when no Docker engine answers, unless REQUIRE_CONTAINER_TESTS=1 (what .ci/run sets).

mod api_shim;
mod compose;
mod compose_postgres;
mod docker;
mod http;
mod images;
mod kill_restart;
