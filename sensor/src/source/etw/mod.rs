//! The ETW source (placeholder).
