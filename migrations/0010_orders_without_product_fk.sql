-- An order's product is its hold's product (orders_hold_fk, and holds_product_fk
-- behind it), so this key guarded nothing new. What it did cost: checking it
-- takes a shared lock on the product row, so every order for a product
-- waited for the hot product's running hold batch (which holds that row
-- exclusively) to commit.
ALTER TABLE orders DROP FOREIGN KEY orders_product_fk;
