//! The Linux kernel process-events connector source (placeholder).
