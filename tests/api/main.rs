//! Integration tests against real MariaDB and RabbitMQ. One binary, one
//! module per capability.

mod connections;
mod edges;
mod foundation;
mod helpers;
mod holds;
mod metrics_format;
mod openapi;
mod orders;
mod reliability;
mod scheduler;
mod waiting_room;
mod workers;
