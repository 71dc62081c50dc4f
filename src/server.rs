//! The HTTP server around a [`Hookbus`]: one factory for the binary and the tests.
//! It binds its own listener, so tests can ask for port 0 and read the real port.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpServer};

use crate::bus::{Hookbus, StartError};
use crate::config::Config;

/// The HTTP server with a [`Hookbus`] behind it: what `hookbus serve` runs.
pub struct Application {
    port: u16,
    server: Server,
    bus: Hookbus,
}

impl Application {
    /// Starts the actors and binds the listener; requests are served once [`run`](Self::run)
    /// is awaited (or the server is spawned).
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let address = config.bind.clone();
        let bind_error = |source| StartError::Bind { address: address.clone(), source };
        let listener = TcpListener::bind(&config.bind).map_err(bind_error)?;
        let local = listener.local_addr().map_err(bind_error)?;
        let port = local.port();
        let workers = match config.workers {
            0 => default_workers(),
            chosen => chosen,
        };
        let bus = Hookbus::start(config).await?;
        let routes = bus.admin_routes();
        let server = HttpServer::new(move || App::new().configure(routes.clone()))
            .shutdown_timeout(10)
            .client_request_timeout(Duration::from_secs(30));
        let server = server.workers(workers).listen(listener).map_err(bind_error)?.run();
        log::info!("hookbus {} listening on http://{local}", env!("CARGO_PKG_VERSION"));
        Ok(Self { port, server, bus })
    }

    /// The port it listens on (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The system behind the routes.
    pub fn bus(&self) -> &Hookbus {
        &self.bus
    }

    /// Stops the HTTP server from the outside (tests; SIGTERM does the same in the binary).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM/SIGINT (or [`ServerHandle::stop`]), then drains deliveries
    /// in flight and flushes every record.
    pub async fn run(self) -> std::io::Result<()> {
        self.server.await?;
        log::info!("HTTP server stopped; finishing attempts in flight");
        self.bus.shutdown().await;
        log::info!("shutdown complete");
        Ok(())
    }
}

/// HTTP workers when none are configured: one per core. Publishes are taken in and answered
/// on these threads, so a core without one leaves them waiting under load; servers sharing
/// one machine's cores can set fewer each (`workers`).
fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}
