//! The smallest useful plugin: greets the name in its payload.

use serde::{Deserialize, Serialize};
use taskhost_sdk::{Job, JobError};

#[derive(Deserialize)]
struct Greet {
    name: String,
}

#[derive(Serialize)]
struct Greeting {
    greeting: String,
    attempt: u32,
}

/// What `hello` says; its next version (built with `next`) says it otherwise.
#[cfg(not(feature = "next"))]
const SALUTATION: &str = "Hello";
#[cfg(feature = "next")]
const SALUTATION: &str = "Hi";

fn hello(job: &Job, greet: Greet) -> Result<Greeting, JobError> {
    if greet.name.trim().is_empty() {
        return Err(JobError::permanent("name must not be empty"));
    }
    Ok(Greeting {
        greeting: format!("{SALUTATION}, {}!", greet.name),
        attempt: job.attempt,
    })
}

taskhost_sdk::plugin! {
    handler("hello", hello).describe("Greets the name in its payload"),
}
