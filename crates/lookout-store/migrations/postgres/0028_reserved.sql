-- Reserved for another branch's migration 0028 (the build refuses gaps); dropped when merged.
SELECT 1;
