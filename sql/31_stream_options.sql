-- librdkafka properties that run commands, load libraries or read server
-- files need a superuser; harmless ones are open to the stream's owner.
CREATE TABLE opt_target (id int, v text);
CREATE ROLE streamml_opt_user;
GRANT INSERT ON opt_target TO streamml_opt_user;
SET ROLE streamml_opt_user;
SELECT streamml.create_stream('opt1', 'opt_target', '127.0.0.1:1', 't', 'json',
	'{"kafka": {"sasl.kerberos.kinit.cmd": "touch /tmp/pwned"}}');
SELECT streamml.create_stream('opt1', 'opt_target', '127.0.0.1:1', 't', 'json',
	'{"kafka": {"plugin.library.paths": "/tmp/evil.so"}}');
SELECT streamml.create_stream('opt1', 'opt_target', '127.0.0.1:1', 't', 'json',
	'{"kafka": {"ssl.ca.location": "/etc/shadow"}}');
SELECT streamml.create_stream('opt1', 'opt_target', '127.0.0.1:1', 't', 'json',
	'{"kafka": {"security.protocol": "sasl_ssl", "sasl.mechanisms": "PLAIN",
	  "sasl.username": "u", "sasl.password": "p", "fetch.wait.max.ms": 10,
	  "socket.timeout.ms": 5000, "client.id": "me"}}');
SELECT streamml.alter_stream('opt1', '{"kafka": {"sasl.kerberos.keytab": "/etc/krb5.keytab"}}');
SELECT streamml.alter_stream('opt1', '{"kafka": {"ssl_engine_location": "/tmp/evil.so"}}');
SELECT streamml.alter_stream('opt1', '{"kafka": {"queued.min.messages": 1000}}');
-- Rebalances are answered with whole assignments: no cooperative protocol.
SELECT streamml.alter_stream('opt1', '{"kafka": {"partition.assignment.strategy": "cooperative-sticky"}}');
SELECT options FROM streamml.streams WHERE name = 'opt1';
-- Properties that can keep a processor busy are raised to a floor (with a
-- notice); an "off" value below it (statistics 0, refresh -1) is kept.
SELECT streamml.alter_stream('opt1', '{"kafka": {"topic.metadata.refresh.interval.ms": 1,
	"reconnect.backoff.ms": 0, "fetch.wait.max.ms": "5", "heartbeat.interval.ms": 1,
	"statistics.interval.ms": 0, "socket.timeout.ms": 30000}}');
SELECT streamml.alter_stream('opt1', '{"kafka": {"topic.metadata.refresh.interval.ms": -1,
	"statistics.interval.ms": 0, "reconnect.backoff.ms": "100"}}');
-- A stream may not ask for more workers than one role may ever run.
SELECT streamml.create_stream('opt3', 'opt_target', '127.0.0.1:1', 't', 'json',
	'{"workers": 64}');
SELECT streamml.alter_stream('opt1', '{"workers": 23}');
SELECT streamml.alter_stream('opt1', '{"workers": 2, "kafka": null}');
SELECT options FROM streamml.streams WHERE name = 'opt1';
RESET ROLE;
-- A superuser may set any of them.
SELECT streamml.create_stream('opt2', 'opt_target', '127.0.0.1:1', 't', 'json',
	'{"kafka": {"ssl.ca.location": "/etc/ssl/certs/ca.pem", "reconnect.backoff.ms": 0}}');
SELECT streamml.alter_stream('opt1', '{"kafka": {"sasl.kerberos.keytab": "/etc/krb5.keytab"}}');
SELECT name, options FROM streamml.streams WHERE name LIKE 'opt%' ORDER BY id;
SELECT streamml.drop_stream('opt1');
SELECT streamml.drop_stream('opt2');
REVOKE ALL ON opt_target FROM streamml_opt_user;
DROP ROLE streamml_opt_user;
DROP TABLE opt_target;
-- The settings: their defaults, and what may not be changed in a session.
SHOW streamml.database;
SHOW streamml.launcher_naptime;
SHOW streamml.max_workers;
SHOW streamml.max_workers_per_role;
SHOW streamml.max_stat_slots;
SHOW streamml.produce_timeout;
SHOW streamml.debug_visible_partitions;
SET streamml.produce_timeout = '2s';
SHOW streamml.produce_timeout;
RESET streamml.produce_timeout;
SET streamml.produce_timeout = 0;
SET streamml.launcher_naptime = '5s';
SET streamml.max_workers = 4;
SET streamml.max_workers_per_role = 2;
ALTER SYSTEM SET streamml.max_workers = -2;
ALTER SYSTEM SET streamml.max_workers_per_role = 300000;
SET streamml.max_stat_slots = 10;
SET streamml.debug_visible_partitions = 2;
SELECT name FROM pg_settings WHERE name LIKE 'streamml.%' ORDER BY name;
