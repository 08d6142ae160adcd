//! Helpers shared by the end-to-end tests (see the `[[test]]` targets).
