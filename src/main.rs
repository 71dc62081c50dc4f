//! The `hookbus` binary: the allocator and the command line (`cli`); everything else is the
//! library.

mod cli;

// The delivery loop allocates small, short-lived buffers on one thread and frees them on
// another; jemalloc does that with much less CPU than glibc's malloc, without mimalloc's
// larger footprint. A feature of the binary (on by default): the library leaves the
// allocator to the application that embeds it.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    cli::run().await
}
