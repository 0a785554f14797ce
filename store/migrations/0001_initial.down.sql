DROP TABLE IF EXISTS outbox, notifications, messages, comments, posts, connections,
    skills, educations, work_experiences, user_profiles, users CASCADE;
DROP FUNCTION IF EXISTS outbox_notify();
DROP FUNCTION IF EXISTS bump_profile_version();
DROP SEQUENCE IF EXISTS profile_version_seq;
