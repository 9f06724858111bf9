#!/bin/bash
# Run once by the mysql image on an empty volume (docker-entrypoint-initdb.d),
# after it created the flash_sale database. Two users, least privilege:
#   flash_migrate  applies the schema (`admin migrate`, the compose `migrate` service)
#   flash_app      what api, worker and scheduler run as (MIGRATE=off): data rights only
# The same GRANTs are listed in README.md ("Database user").
set -euo pipefail
: "${FLASH_APP_DB_PASSWORD:?}" "${FLASH_MIGRATE_DB_PASSWORD:?}"
mysql --protocol=socket -uroot -p"$MYSQL_ROOT_PASSWORD" <<SQL
CREATE USER 'flash_migrate'@'%' IDENTIFIED BY '${FLASH_MIGRATE_DB_PASSWORD}';
GRANT ALL PRIVILEGES ON flash_sale.* TO 'flash_migrate'@'%';
CREATE USER 'flash_app'@'%' IDENTIFIED BY '${FLASH_APP_DB_PASSWORD}';
GRANT SELECT, INSERT, UPDATE, DELETE ON flash_sale.* TO 'flash_app'@'%';
SQL
