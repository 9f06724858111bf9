-- A hold is written only by the worker, under the lock of its product's
-- row, which it has just read; products are never deleted. So this key
-- guarded nothing the worker does not. What it cost: the key's index is
-- holds_product_expiry, which holds the status, so every change of a hold's
-- status (used by an order, expired by a sweep or a failed payment)
-- re-inserts the hold's entry there, and InnoDB checks the key again on
-- that insert with a shared lock on the product row. Every order for the
-- hot product then waited for the running hold batch (which holds that row
-- exclusively) to commit, as orders did for orders_product_fk (0010).
ALTER TABLE holds DROP FOREIGN KEY holds_product_fk;
