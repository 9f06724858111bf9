//! Integration tests against real MariaDB and RabbitMQ. One binary, one
//! module per capability.

mod admin_api;
mod buyers;
mod connections;
mod console;
mod edges;
mod foundation;
mod hang_up;
mod helpers;
mod holds;
mod metrics_format;
mod openapi;
mod orders;
mod overview;
mod rate_limits;
mod reliability;
mod sale_window;
mod scheduler;
mod waiting_room;
mod workers;
