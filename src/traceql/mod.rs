//! TraceQL front end: lexer and nom parser to a typed AST, validation, canonical printing, and
//! errors with line and column. Knows nothing of DataFusion, storage or HTTP.
