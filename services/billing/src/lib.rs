//! `llmops-billing`: turning the usage ledger into money.
//!
//! So far: the rating engine ([`rating`]), a pure function from a price
//! plan and aggregated usage to invoice lines in integer minor units. Plans
//! storage, invoices, budgets and Stripe build on it.

pub mod budgets;
pub mod entities;
pub mod invoices;
pub mod periods;
mod pool_prices;
pub mod rating;
pub mod routes;
pub mod stripe_push;
pub mod stripe_webhook;

pub use invoices::Billing;
