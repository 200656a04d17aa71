"""The AWS list prices every cost figure of the benchmarks uses, in one place: region us-east-1, x86_64, on-demand,
no free tier. Copied by hand from the AWS pricing pages (this code fetches nothing); check them before relying on a
figure, and update PRICES_AS_OF with them."""

PRICES_REGION = "us-east-1"
PRICES_AS_OF = "2025-06-01"

# AWS Lambda (x86_64): per request, and per GB-second of billed duration (rounded up to 1 ms).
LAMBDA_PER_MILLION_REQUESTS = 0.20
LAMBDA_PER_GB_SECOND = 0.0000166667
# Amazon SQS standard queue: per request (each 64 KB chunk of a payload is one request; a batch of up to 10 is one).
SQS_PER_MILLION_REQUESTS = 0.40
# Amazon DynamoDB on-demand (prices of 2024-11-01): per write request unit (1 KB) and read request unit (4 KB).
DYNAMODB_PER_MILLION_WRITE_UNITS = 0.625
DYNAMODB_PER_MILLION_READ_UNITS = 0.125
# Amazon S3 Standard: PUT, COPY, POST, LIST per 1,000 requests; GET (and other reads) per 1,000 requests.
S3_PER_THOUSAND_PUTS = 0.005
S3_PER_THOUSAND_GETS = 0.0004
