DROP TABLE IF EXISTS search_documents, search_documents_previous, search_documents_rebuild;
DROP FUNCTION IF EXISTS search_words(text[]);
