//! The tables of RAG (the chunks live in the vector store).

pub mod document;
pub mod knowledge_base;
pub mod limits;
pub mod source;
pub mod terms;

llmops_core::tenant_owned!(document, knowledge_base, source, terms);
