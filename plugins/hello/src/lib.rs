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

fn hello(job: &Job, greet: Greet) -> Result<Greeting, JobError> {
    if greet.name.trim().is_empty() {
        return Err(JobError::permanent("name must not be empty"));
    }
    Ok(Greeting {
        greeting: format!("Hello, {}!", greet.name),
        attempt: job.attempt,
    })
}

taskhost_sdk::plugin! {
    handler("hello", hello).describe("Greets the name in its payload"),
}
