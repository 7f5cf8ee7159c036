# StreamML::Trades — the crash tests' stream of made-up trades: per symbol a
# random walk of prices, a trade every ~0.4 s (now and then a gap longer
# than the windows), 5% of prices NULL (unscorable rows), each symbol always
# in the same Kafka partition of a two-partition topic, so that one worker
# loads it in order.  Seeded: a test makes the same trades on every run.
package StreamML::Trades;

use strict;
use warnings;
use Test::More;
use StreamML::DevBroker qw(produce);

# StreamML::Trades->new(nsym => N, seed => S, bootstrap => B[, topic => T])
sub new
{
	my ($class, %o) = @_;
	my $self = bless {
		nsym => $o{nsym},
		bootstrap => $o{bootstrap},
		topic => $o{topic} // 'trades',
		total => 0,
		last_ts => { map { $_ => 0 } 0 .. $o{nsym} - 1 },
		price => { map { $_ => 100 + $_ } 0 .. $o{nsym} - 1 },
	}, $class;
	srand($o{seed});
	return $self;
}

# How many trades were made so far (their ids are 1 .. total).
sub total
{
	return $_[0]{total};
}

# The next trade of symbol s: [key, JSON].
sub trade
{
	my ($self, $s) = @_;
	my $id = ++$self->{total};
	$self->{last_ts}{$s} += 0.001 + int(rand(800)) / 1000 + (rand() < 0.01 ? 70 : 0);
	$self->{price}{$s} += rand() - 0.5;
	my $p = sprintf('%.4f', $self->{price}{$s});
	my $price = rand() < 0.05 ? 'null' : $p;
	return [ sprintf('S%02d', $s),
		sprintf('{"id": %d, "symbol": "S%02d", "ts": %.3f, "price": %s, "notional": %s}',
			$id, $s, 1767225600 + $self->{last_ts}{$s}, $price, $p * 3) ];
}

# Produces n trades into each partition, round robin over its symbols.
sub produce_chunk
{
	my ($self, $n) = @_;
	for my $part (0, 1)
	{
		my @msgs;
		push @msgs, $self->trade(2 * ($_ % ($self->{nsym} / 2)) + $part) for 1 .. $n;
		ok(produce($self->{bootstrap}, $self->{topic}, \@msgs, partition => $part),
			"produced $n trades into partition $part");
	}
	return;
}

1;
