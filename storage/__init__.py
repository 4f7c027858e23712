"""Storage: the SQL system of record (SQLite or PostgreSQL) and the FAISS
indexes derived from it (DESIGN.md section 4.6). Imports no other mxn stage."""
