-- Sample data for the no-database demo (`npm start`): a local D1 database bound as DEMO_DB.
-- Idempotent: running it again changes nothing.
CREATE TABLE IF NOT EXISTS orders (
  id INTEGER PRIMARY KEY,
  customer TEXT NOT NULL,
  product TEXT NOT NULL,
  quantity INTEGER NOT NULL,
  total REAL NOT NULL,
  placed_at TEXT NOT NULL,
  updated_at INTEGER NOT NULL
);
INSERT OR IGNORE INTO orders (id, customer, product, quantity, total, placed_at, updated_at)
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
SELECT
  i,
  'customer-' || ((i * 7919) % 997),
  CASE i % 5 WHEN 0 THEN 'keyboard' WHEN 1 THEN 'monitor' WHEN 2 THEN 'cable' WHEN 3 THEN 'dock' ELSE 'headset' END,
  1 + i % 4,
  round((1 + i % 4) * (9.99 + (i % 50)), 2),
  strftime('%Y-%m-%dT%H:%M:%SZ', 1767225600 + i * 600, 'unixepoch'),
  1767225600 + i * 600
FROM n;
