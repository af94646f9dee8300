-- Daily totals beside the monthly ones: bytes and events per customer, UTC
-- day and space, added in the transaction that adds to the monthly row, so
-- that account/egress/get and the console read a range instead of scanning
-- events. The key leads with the customer and the day: a customer's days
-- of every space are one range, one space's days a range of the index.
CREATE TABLE daily (
	customer TEXT NOT NULL,
	day      TEXT NOT NULL,  -- YYYY-MM-DD of served_at, UTC
	space    TEXT NOT NULL,
	bytes    INTEGER NOT NULL,
	events   INTEGER NOT NULL,
	PRIMARY KEY (customer, day, space)
) WITHOUT ROWID;
CREATE INDEX daily_space ON daily (customer, space, day);

-- The days of what the ledger already holds, counted as the monthly totals
-- counted them (an event refused for overflow counts without its bytes).
INSERT INTO daily (customer, day, space, bytes, events)
SELECT customer, strftime('%Y-%m-%d', served_at / 1000, 'unixepoch'), space,
       SUM(CASE WHEN reason LIKE 'monthly total would overflow%' THEN 0 ELSE bytes END), COUNT(*)
FROM ledger
GROUP BY customer, strftime('%Y-%m-%d', served_at / 1000, 'unixepoch'), space;
