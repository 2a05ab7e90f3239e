"""Amazon Selling Partner API: listings and feeds out, SQS notifications in."""
