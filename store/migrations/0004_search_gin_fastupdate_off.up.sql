-- Search documents are rewritten at the rate profiles change. With GIN's
-- default fastupdate, new entries collect in a pending list that the write
-- overflowing it (4 MB) must merge into the four indexes by itself: at 500
-- updates/s that stalled indexing for 1-2 s every ~10 s. Writing entries into
-- the indexes directly costs each write a little more and never stalls.
ALTER INDEX search_documents_vector_idx SET (fastupdate = off);
ALTER INDEX search_documents_name_trgm_idx SET (fastupdate = off);
ALTER INDEX search_documents_skills_idx SET (fastupdate = off);
ALTER INDEX search_documents_companies_idx SET (fastupdate = off);
