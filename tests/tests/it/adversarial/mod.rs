//! The fault suite of issue 16: each test tries to break one promise (an
//! entry lost or handled twice where docs/operations.md says it is not, a sandbox or
//! the dashboard escaped, a secret printed) the way an attacker or an
//! unlucky deployment would, and counts what happened.
mod delivery;
mod limits;
mod sandbox;
mod web;
