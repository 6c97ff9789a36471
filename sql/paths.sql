-- Paths are stored losslessly (maya/io/pathtext.py): a backslash is written as two, each byte that is
-- not UTF-8 as \xNN. Rows of `files` written before that (path_format absent) whose path holds a
-- backslash are ambiguous (the literal name a\xff.png and the byte name a<0xFF>.png shared a key):
-- they are dropped once, so those files are read again. `files` is a cache: nothing else is lost.
-- Applied after schema.sql at every start; every statement is idempotent.

CREATE TABLE IF NOT EXISTS path_format (version INTEGER NOT NULL);

DELETE FROM files WHERE contains(path, '\') AND NOT EXISTS (SELECT 1 FROM path_format WHERE version >= 2);

INSERT INTO path_format SELECT 2 WHERE NOT EXISTS (SELECT 1 FROM path_format);
