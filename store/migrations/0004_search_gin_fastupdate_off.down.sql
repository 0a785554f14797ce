ALTER INDEX search_documents_vector_idx RESET (fastupdate);
ALTER INDEX search_documents_name_trgm_idx RESET (fastupdate);
ALTER INDEX search_documents_skills_idx RESET (fastupdate);
ALTER INDEX search_documents_companies_idx RESET (fastupdate);
