-- +goose Up
-- Conversations belong to a team; messages belong to a conversation and go with it.
CREATE TABLE conversations (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    team_id     uuid        NOT NULL,
    title       text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    archived_at timestamptz,
    CONSTRAINT conversations_title_length CHECK (char_length(title) <= 512)
);

-- The API lists a team's conversations newest first.
CREATE INDEX conversations_team_id_created_at_idx ON conversations (team_id, created_at DESC);

CREATE TABLE conversation_messages (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    conversation_id uuid        NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    role            text        NOT NULL,
    content         text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT conversation_messages_role_valid CHECK (role IN ('system', 'user', 'assistant', 'tool'))
);

-- Messages are read per conversation in order; this also serves the foreign key on delete.
CREATE INDEX conversation_messages_conversation_id_id_idx ON conversation_messages (conversation_id, id);

-- +goose Down
DROP TABLE conversation_messages;
DROP TABLE conversations;
